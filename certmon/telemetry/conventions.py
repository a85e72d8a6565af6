"""Metric names, windows, label sets and buckets: the one place a dashboard or rule author reads them off.

Names follow Prometheus' conventions: ``certmon_`` prefix, base units (seconds, ratios 0-1), ``_total`` added by
the client library to counters. Recording rules in dashboards/prometheus use ``level:metric:operation``.
"""

from __future__ import annotations

# Windows of the database-derived gauges: the current Bangkok month and the fiscal year to date.
WINDOWS = ("month", "fiscal_year")
# A paused clock is open too; "paused" is written only for objectives whose clocks pause, so the KPI's one-hour
# clock keeps exactly the series it had before objectives existed.
OPEN_STATES = ("pending", "at_risk", "paused", "breached")
PAUSED_STATE = "paused"
DECIDED_STATES = ("met", "breached")
# Seconds; around the one-hour target so that "how many were close" is visible, then the built-in objectives'
# targets (4 h, 6 business hours, 8 h, a day, three days) so that each has a bucket edge at its target.
DELAY_BUCKETS = (
    300.0, 900.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 14400.0, 21600.0, 28800.0, 86400.0, 259200.0,
)  # fmt: skip
# Request latency buckets in seconds: the API answers in milliseconds; a second is already an incident.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Incidents' `source` is free text from the sender; labels stay bounded by folding unknown ones into "other".
KNOWN_SOURCES = frozenset({"api", "bulk", "demo", "alertmanager", "suricata", "wazuh", "csv", "stream"})
OTHER_SOURCE = "other"
REJECT_REASONS = ("invalid", "conflict")  # pre-initialised for the API's own sources
DATABASE_FAILURE = "database"  # the failure label of a refresh that could not reach the database at all

# Per-process metrics (certmon.telemetry.registry)
BUILD_INFO = "certmon_build_info"
HTTP_REQUESTS = "certmon_http_requests"
HTTP_REQUEST_LABELS = ("method", "route", "status")
HTTP_REQUEST_SECONDS = "certmon_http_request_duration_seconds"
HTTP_REQUEST_SECONDS_LABELS = ("method", "route")
INCIDENTS_INGESTED = "certmon_incidents_ingested"
INCIDENTS_REJECTED = "certmon_incidents_rejected"
NOTIFICATIONS = "certmon_notifications"
NOTIFICATION_LABELS = ("channel", "outcome")
NOTIFICATION_CHANNELS = ("email", "webhook")
# sent: a server accepted it; failed: refused or unanswered (502); duplicate: sent before or in progress (200, 409)
NOTIFICATION_OUTCOMES = ("sent", "failed", "duplicate")
RECOMPUTE_REMAINING = "certmon_recompute_remaining"  # incidents stored under another policy, recomputed behind answers

# Per-process metrics of `certmon consume` (certmon.telemetry.streams)
STREAM_PENDING = "certmon_stream_pending_messages"
STREAM_ACK_PENDING = "certmon_stream_ack_pending_messages"
STREAM_LABELS = ("stream", "consumer")
STREAM_MESSAGES = "certmon_stream_messages"
STREAM_MESSAGES_LABELS = ("kind", "outcome")
STREAM_KINDS = ("incidents", "eve", "wazuh", "alertmanager")
OTHER_KIND = "other"  # a message on a subject no source has
# stored: written and acknowledged; dead_lettered: can never be stored, moved aside; retried: handed back (outage)
STREAM_OUTCOMES = ("stored", "dead_lettered", "retried")
STREAM_BATCH_SECONDS = "certmon_stream_batch_duration_seconds"

# Database-derived gauges (certmon.telemetry.parts). Every SLA family carries `objective`: one of the policy's
# objective names, at most MAX_OBJECTIVES (12) of them, so the label stays bounded.
SLA_OBJECTIVE_INFO = "certmon_sla_objective_info"
SLA_OBJECTIVE_INFO_LABELS = ("objective", "kpi")  # kpi is "true" for exactly one objective, else "false"
SLA_TARGET = "certmon_sla_target_ratio"
SLA_TARGET_LABELS = ("objective",)
SLA_COMPLIANCE = "certmon_sla_compliance_ratio"
SLA_COMPLIANCE_LABELS = ("objective", "window")
SLA_AGENCY_COMPLIANCE = "certmon_sla_agency_compliance_ratio"
SLA_AGENCY_COMPLIANCE_LABELS = ("objective", "window", "agency", "sector")
SLA_INCIDENTS = "certmon_sla_incidents"
SLA_INCIDENTS_LABELS = ("objective", "window", "agency", "sector", "severity", "state")
SLA_OPEN_INCIDENTS = "certmon_sla_open_incidents"
SLA_OPEN_INCIDENTS_LABELS = ("objective", "agency", "sector", "severity", "state")
SLA_DECIDED = "certmon_sla_decided_incidents"
SLA_DECIDED_LABELS = ("objective", "sector", "severity", "state")
SLA_DELAY = "certmon_sla_delay_seconds"
SLA_DELAY_LABELS = ("objective", "severity")
SATISFACTION_RATIO = "certmon_satisfaction_ratio"
SATISFACTION_RESPONSES = "certmon_satisfaction_responses"
SATISFACTION_LABELS = ("service", "window")
SATISFACTION_TARGET = "certmon_satisfaction_target_ratio"
SATISFACTION_TARGET_LABELS = ("service",)
EXPORT_LAST_SUCCESS = "certmon_export_last_success_timestamp_seconds"
EXPORT_LAST_MONTH_END = "certmon_export_last_month_end_timestamp_seconds"

# Snapshot health (certmon.telemetry.snapshot)
SNAPSHOT_AGE = "certmon_snapshot_age_seconds"
SNAPSHOT_LAST_SUCCESS = "certmon_snapshot_last_success_timestamp_seconds"
SNAPSHOT_INTERVAL = "certmon_snapshot_refresh_interval_seconds"
SNAPSHOT_DURATION = "certmon_snapshot_refresh_duration_seconds"
SNAPSHOT_SAMPLES = "certmon_snapshot_samples"
SNAPSHOT_FAILURES = "certmon_snapshot_refresh_failures"
SNAPSHOT_FAILURES_LABELS = ("part",)
