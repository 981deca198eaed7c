"""Bootstrap of the serverless analytics task: put the shipped package on `sys.path`, run it.

Databricks runs this file as the task's `spark_python_task` (uploaded by `serverless.py`), with
`--code-zip <the package's zip on the Volume>` and Dagster Pipes' own arguments. It imports only
the standard library until the package is in place, exactly as the step launcher's bootstrap
unzips `code.zip` before it imports the step.
"""

import argparse
import sys
import tempfile
import zipfile


def main() -> None:
    """Unzip the package into a scratch folder, put it first on `sys.path`, run the task."""
    parser = argparse.ArgumentParser(description="crypto_assets analytics on Databricks")
    parser.add_argument("--code-zip", required=True, help="the crypto_assets package as a zip")
    args, _ = parser.parse_known_args()
    target = tempfile.mkdtemp(prefix="crypto_assets_code_")
    with zipfile.ZipFile(args.code_zip) as archive:
        archive.extractall(target)
    sys.path.insert(0, target)
    from crypto_assets.orchestration.databricks.pipes_task import run_task  # noqa: PLC0415 - just unzipped

    run_task()


if __name__ == "__main__":
    main()
