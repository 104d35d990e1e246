-- 05 Continuous loading: a Snowpipe that runs the COPY of 04 for each object S3
-- announces. After creating it, `SHOW PIPES LIKE 'GAME_EVENTS_PIPE';` gives the SQS
-- queue (notification_channel) to send the bucket's ObjectCreated events for the
-- prefix {{prefix}} to (warehouse/README.md, step 4).
USE SCHEMA {{database}}.{{schema}};

CREATE PIPE IF NOT EXISTS game_events_pipe
  AUTO_INGEST = TRUE
  COMMENT = 'Loads new objects of Firehose stream {{stream}} into game_events_raw'
  AS
COPY INTO game_events_raw (record, file_name, file_row_number)
  FROM (
    SELECT $1, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER
    FROM @game_events_stage
  )
  PATTERN = '{{stream_pattern}}'
  FILE_FORMAT = (FORMAT_NAME = 'game_events_ndjson');
