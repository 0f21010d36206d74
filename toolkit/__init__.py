"""Build-time tools: package a model, train the demo model. Nothing here ships to Lambda."""
