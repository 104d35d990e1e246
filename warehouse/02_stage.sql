-- 02 Where the data lives: the database and schema, the NDJSON file format and an
-- external stage on the bucket and prefix Firehose stream {{stream}} writes to.
CREATE DATABASE IF NOT EXISTS {{database}};
CREATE SCHEMA IF NOT EXISTS {{database}}.{{schema}};
USE SCHEMA {{database}}.{{schema}};

-- One JSON object per line. COMPRESSION = AUTO also reads objects Firehose gzips
-- (CompressionFormat GZIP on the stream).
CREATE FILE FORMAT IF NOT EXISTS game_events_ndjson
  TYPE = JSON
  COMPRESSION = AUTO
  STRIP_OUTER_ARRAY = FALSE
  COMMENT = 'Player event tracker: newline-delimited JSON, one event per line';

CREATE STAGE IF NOT EXISTS game_events_stage
  URL = 's3://{{bucket}}/{{prefix}}'
  STORAGE_INTEGRATION = {{storage_integration}}
  FILE_FORMAT = (FORMAT_NAME = 'game_events_ndjson')
  COMMENT = 'Objects of Firehose stream {{stream}}';
