"""The double switch on instances and models: a resource serves traffic only when it is
switched on technically (it works) and economically (someone pays for it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, computed_field


class Activation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool


class Activated(BaseModel):
    technical_activation: bool
    economic_activation: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def serves_traffic(self) -> bool:
        """Only a resource switched on both technically and economically serves traffic."""
        return self.technical_activation and self.economic_activation
