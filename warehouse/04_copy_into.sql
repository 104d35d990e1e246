-- 04 Backfill: load every object of stream {{stream}} under the stage that this table
-- has not loaded yet. Snowflake remembers loaded objects for 64 days, so running it
-- again (or alongside the pipe) loads nothing twice within that time. Objects older
-- than that: add LOAD_UNCERTAIN_FILES = TRUE; a line loaded twice is harmless, the
-- view (06) keeps one row per event. loaded_at is left out so that its DEFAULT fills it.
USE SCHEMA {{database}}.{{schema}};

COPY INTO game_events_raw (record, file_name, file_row_number)
  FROM (
    SELECT $1, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER
    FROM @game_events_stage
  )
  PATTERN = '{{stream_pattern}}'
  FILE_FORMAT = (FORMAT_NAME = 'game_events_ndjson');
