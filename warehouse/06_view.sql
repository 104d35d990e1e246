-- 06 The typed view analysts query: one row per event of a game, the newest line.
-- Firehose retries and resends can deliver an event twice, and a corrected record
-- (manage.py reconvert) is sent again with a newer emitted_at; Snowflake enforces no
-- unique keys, so the view picks, per (game, event_id), the line with the latest
-- emitted_at. Timestamps are TIMESTAMP_TZ (UTC), money NUMBER(38, 6), properties and
-- context stay VARIANT. Every event type is here; event_schema_version is set for
-- custom types only (NULL when accepted without a schema); the revenue columns hold
-- the revenue of every type that has some (purchase, ad_impression; price and
-- quantity: purchases only). Each type's own typed columns are in its view of 07.
-- Fields the record adds later: read them from `record` in game_events_raw, or add
-- them here.
USE SCHEMA {{database}}.{{schema}};

CREATE OR REPLACE VIEW game_events
  COMMENT = 'Player event tracker: one row per (game, event_id), the newest line delivered'
AS
SELECT
  record:schema_version::INTEGER AS schema_version,
  record:event_id::STRING AS event_id,
  record:event_type::STRING AS event_type,
  record:game::STRING AS game,
  record:player_id::STRING AS player_id,
  record:occurred_at::TIMESTAMP_TZ AS occurred_at,
  record:sent_at::TIMESTAMP_TZ AS sent_at,
  record:received_at::TIMESTAMP_TZ AS received_at,
  record:derived_at::TIMESTAMP_TZ AS derived_at,
  record:emitted_at::TIMESTAMP_TZ AS emitted_at,
  record:platform::STRING AS platform,
  record:app_version::STRING AS app_version,
  record:session_id::STRING AS session_id,
  record:properties AS properties,
  record:context AS context,
  record:event_schema_version::INTEGER AS event_schema_version,
  record:price::NUMBER(38, 6) AS price,
  record:quantity::INTEGER AS quantity,
  record:currency::STRING AS currency,
  record:revenue::NUMBER(38, 6) AS revenue,
  record:revenue_base::NUMBER(38, 6) AS revenue_base,
  record:base_currency::STRING AS base_currency,
  record:fx_rate::NUMBER(38, 12) AS fx_rate,
  record:fx_date::DATE AS fx_date,
  file_name,
  loaded_at
FROM game_events_raw
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY record:game::STRING, record:event_id::STRING
  ORDER BY record:emitted_at::TIMESTAMP_TZ DESC NULLS LAST, loaded_at DESC, file_name DESC, file_row_number DESC
) = 1;
