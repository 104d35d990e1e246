"""Operations: Prometheus exposition, health probes, the job schedule, error reports."""
