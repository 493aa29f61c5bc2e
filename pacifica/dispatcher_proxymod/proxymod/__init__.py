"""The proxymod handler: validated configurations, INI files and the steps of a run."""
