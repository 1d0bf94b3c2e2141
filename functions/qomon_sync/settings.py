"""The one settings model, read once from the environment.

Secrets are never settings values: the Qomon API key is read at run time from Secrets
Manager (see adapters.secrets); only the secret's name travels in the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict

QOMON_EU_URL = "https://incoming.qomon.app"
QOMON_US_URL = "https://incoming-us.qomon.app"

Positive = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    qomon_base_url: HttpUrl = HttpUrl(QOMON_EU_URL)
    """EU spaces use the default; spaces hosted in the US use QOMON_US_URL."""
    qomon_connect_timeout_s: Positive = 3.05
    qomon_read_timeout_s: Positive = 10.0
    qomon_bucket_size: Annotated[int, Field(ge=5)] = 100
    """Qomon's observed burst; a PATCH costs 5, so anything smaller could never send one."""
    qomon_refill_per_s: Positive = 10.0
    qomon_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
