"""`inventiv-finops` / `python -m inventiv_finops`."""

from inventiv_common.runner import run_service
from inventiv_finops.app import create_app
from inventiv_finops.settings import FinopsSettings


def main() -> None:
    run_service(FinopsSettings, create_app, port_env="FINOPS_PORT")


if __name__ == "__main__":
    main()
