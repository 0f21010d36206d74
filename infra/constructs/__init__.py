"""One construct per unit: the model function, its HTTP API, monitoring, rollout and model store."""
