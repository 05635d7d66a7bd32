"""batchtasks: Azure Batch container workloads declared as code, with Pulumi."""
