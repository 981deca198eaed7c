"""Entry of the Databricks Pipes task, serverless or on a classic cluster: run the installed task.

Databricks runs this file as the task's `spark_python_task` (uploaded beside nothing else by
`pipes.py`), with Dagster Pipes' own arguments on an existing cluster, or its environment
variables on a new one. The package is not beside it: the task's libraries installed the
package's wheel, and `pipes_task.run_task` is imported from there (it reports where from). Only
the standard library is imported until then, so a compute without the wheel says so in one line.
"""

import sys


def main() -> None:
    """Import the installed package's task and run it."""
    try:
        from crypto_assets.orchestration.databricks.pipes_task import run_task  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name != "crypto_assets":
            raise
        sys.exit(
            "crypto_assets is not installed on this compute: the task's libraries (or its "
            "environment's dependencies) must list the package's wheel from the Volume"
        )
    run_task()


if __name__ == "__main__":
    main()
