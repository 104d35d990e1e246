-- 03 The raw table (ELT): each NDJSON line kept whole as one VARIANT, with the object
-- it came from and when it was loaded. A field the record gains later is already
-- here; the typed view (06) decides what to expose.
USE SCHEMA {{database}}.{{schema}};

CREATE TABLE IF NOT EXISTS game_events_raw (
  record VARIANT NOT NULL,           -- the event line exactly as sent
  file_name STRING NOT NULL,         -- METADATA$FILENAME: the S3 object's path
  file_row_number NUMBER(38, 0),     -- METADATA$FILE_ROW_NUMBER: the line within the object
  loaded_at TIMESTAMP_TZ NOT NULL DEFAULT CURRENT_TIMESTAMP()  -- by this default: COPY leaves it out
)
COMMENT = 'Player event tracker: one row per NDJSON line delivered by Firehose; may hold an event more than once';
