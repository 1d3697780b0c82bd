"""aws-credentials-pipe: AWS credentials for Bitbucket Pipelines steps."""

__version__ = "0.1.0"
