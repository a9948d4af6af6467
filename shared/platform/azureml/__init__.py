"""The Azure ML adapter of the platform port. Importing it does not import `azure.ai.ml`."""

from shared.platform.azureml.adapter import AzureMLPlatform
from shared.platform.azureml.clients import Cloud

__all__ = ["AzureMLPlatform", "Cloud"]
