"""Lambda code: the only package shipped in the function bundle besides model_artifacts/."""
