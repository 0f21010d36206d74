"""The stack's output names: the constructs write them, the operating tools (invoke, postdeploy, publish) read them.

Plain strings, so reading them does not load the CDK.
"""

from __future__ import annotations

# Base URL of the model API.
API_URL = "ApiUrl"
# Log group with the model function's REPORT lines.
FUNCTION_LOG_GROUP = "FunctionLogGroupName"
# Bucket that toolkit.publish uploads models to (only with model_source s3).
MODEL_BUCKET = "ModelBucketName"
