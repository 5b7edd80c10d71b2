"""The farm on a Dask cluster: hosted pytest workers, code shipping, the relay hand-off."""
