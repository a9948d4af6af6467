"""The Azure ML adapter of the platform port. Importing it does not import `azure.ai.ml`."""

from shared.adapters.azureml.adapter import AzureMLPlatform
from shared.adapters.azureml.clients import Cloud

__all__ = ["AzureMLPlatform", "Cloud"]
