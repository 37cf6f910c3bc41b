"""The old name of the store commands: ``python -m db ...`` runs :mod:`service.store_cli`.

The commands use the use-case layer (export, reader figures, maintenance), so
they live there; this alias keeps the documented command working without the
store importing the layer above it.
"""

if __name__ == "__main__":
    import runpy

    runpy.run_module("service.store_cli", run_name="__main__", alter_sys=True)
