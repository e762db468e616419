"""`inventiv-orchestrator` / `python -m inventiv_orchestrator`."""

from inventiv_common.runner import run_service
from inventiv_orchestrator.app import create_app
from inventiv_orchestrator.settings import OrchestratorSettings


def main() -> None:
    run_service(OrchestratorSettings, create_app, port_env="ORCHESTRATOR_PORT")


if __name__ == "__main__":
    main()
