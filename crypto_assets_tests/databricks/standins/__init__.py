"""Stand-ins for what only a Databricks runtime has (Auto Loader, Unity Catalog names)."""
