"""The converter's settings: where ffmpeg is, how long a conversion may take, how failures retry."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from earshot.common.settings import CommonSettings


class ConverterSettings(CommonSettings):
    """Settings of the converter worker (environment variables `EARSHOT_<FIELD>`)."""

    ffmpeg_path: str | None = Field(
        default=None,
        description="The ffmpeg binary. Empty: `ffmpeg` on PATH, else the one the imageio-ffmpeg "
        "wheel ships (no system package needed).",
    )
    conversion_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Wall-clock limit of one conversion: past it ffmpeg is killed, the job fails.",
    )
    converter_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Deliveries of a job that failed transiently before it is failed for good.",
    )
    converter_retry_backoff_base_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Delay before the first retry of a transient failure; doubles on each attempt.",
    )
    converter_retry_backoff_max_seconds: float = Field(
        default=300.0, gt=0, description="Upper bound of the delay between two retries."
    )
    progress_interval_seconds: float = Field(
        default=1.0, ge=0, description="At most one progress event per job per this many seconds."
    )
    shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long running conversions may finish before they are "
        "stopped and their jobs handed back to the queue.",
    )
    work_dir: Path | None = Field(
        default=None,
        description="Temporary files of running conversions. Empty: DATA_DIR/tmp/converter.",
    )
    converter_concurrency: int = Field(
        default=1, ge=1, description="Jobs one converter process runs at once."
    )
    ffmpeg_threads: int = Field(
        default=0, ge=0, description="ffmpeg's `-threads` per conversion; 0 lets ffmpeg decide."
    )

    @model_validator(mode="after")
    def _derive_work_dir(self) -> ConverterSettings:
        work_dir = self.work_dir or self.data_dir / "tmp" / "converter"
        self.work_dir = work_dir.expanduser().resolve()
        return self

    @model_validator(mode="after")
    def _attempts_fit_the_queue(self) -> ConverterSettings:
        # Past `queue_max_deliveries` the queue dead-letters the job silently, before the
        # converter's last attempt could report it failed.
        if self.converter_max_attempts > self.queue_max_deliveries:
            raise ValueError(
                f"EARSHOT_CONVERTER_MAX_ATTEMPTS ({self.converter_max_attempts}) must not exceed "
                f"EARSHOT_QUEUE_MAX_DELIVERIES ({self.queue_max_deliveries})"
            )
        return self

    @property
    def resolved_work_dir(self) -> Path:
        """The resolved temporary directory (never None once settings are built)."""
        assert self.work_dir is not None
        return self.work_dir
