"""aws-credentials-pipe: AWS credentials for Bitbucket Pipelines steps."""

__version__ = "1.0.1"
