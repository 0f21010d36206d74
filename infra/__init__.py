"""Build-time code: the CDK app, its constructs and the Docker-free Lambda bundler."""
