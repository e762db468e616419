"""`inventiv-api` / `python -m inventiv_api`."""

from inventiv_api.app import create_app
from inventiv_api.settings import ApiSettings
from inventiv_common.runner import run_service


def main() -> None:
    run_service(ApiSettings, create_app, port_env="API_PORT")


if __name__ == "__main__":
    main()
