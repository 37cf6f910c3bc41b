"""The old name of the prediction command: ``python -m core.predict`` runs :mod:`service.predict_cli`.

The command joins the model and the review store, so it lives in the use-case
layer; this alias keeps existing scripts working without ``core`` importing it.
"""

if __name__ == "__main__":
    import runpy

    runpy.run_module("service.predict_cli", run_name="__main__", alter_sys=True)
