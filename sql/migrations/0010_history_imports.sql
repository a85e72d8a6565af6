-- Incidents imported as history (certmon ingest --history): the instant the import closed the clocks that no milestone
-- had stopped and that were past due. Such a clock keeps its due time, gets this instant as stopped_at and no
-- delay_seconds (the delay is unknown): it is a miss in its period, not an open clock. NULL for every other incident.
ALTER TABLE incidents ADD COLUMN history_closed_at timestamptz;
