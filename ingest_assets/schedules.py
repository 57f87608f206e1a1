"""Schedules: the whole-dataset checks run hourly, so that the daemon alone reports batches
that never got their items."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from ingest_assets.jobs import dataset_checks_job

dataset_checks_schedule = ScheduleDefinition(
    name="dataset_checks_hourly",
    job=dataset_checks_job,
    cron_schedule="17 * * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Runs the checks that judge every batch at once (every batch has items).",
)
