-- 08 Game KPIs, as `manage.py kpi_report` gives them, computed from the game_events view
-- (one row per event, so Firehose retries, resends and reconvert's corrected lines
-- count once, at their newest value). The day of an event is the UTC date of its
-- derived_at; late events count toward their own day. An erased player's rows,
-- deleted from game_events_raw (erase_player prints the statement), leave every view.
-- Unlike the service's aggregates, these read the whole history each time: for a
-- dashboard over years, materialise them (CREATE DYNAMIC TABLE ... AS the same SELECT).
--   game_kpi_dau       per game and day: dau, new_players, sessions, avg_session_seconds
--   game_kpi_revenue   per game and day: purchases, paying_players, revenue_base,
--                      ad_revenue_base, arpdau
--   game_kpi_cohorts   per game and install day (first event): new_players and the
--                      D1/D7/D30 retention, NULL while that later day (UTC) is not over
-- Only days with events have rows.
USE SCHEMA {{database}}.{{schema}};

CREATE OR REPLACE VIEW game_kpi_dau
  COMMENT = 'Player event tracker: daily active and new players, sessions and their mean length, per game and UTC day'
AS
WITH player_days AS (
  SELECT DISTINCT game, player_id, derived_at::DATE AS day FROM game_events
),
first_days AS (
  SELECT game, player_id, MIN(day) AS first_day FROM player_days GROUP BY game, player_id
),
sessions AS (
  SELECT
    game,
    derived_at::DATE AS day,
    SUM(CASE WHEN event_type = 'session_start' THEN 1 ELSE 0 END) AS sessions,
    SUM(CASE WHEN event_type = 'session_end' THEN properties:duration_ms::INTEGER END) AS session_ms,
    SUM(CASE WHEN event_type = 'session_end' AND properties:duration_ms IS NOT NULL THEN 1 ELSE 0 END) AS session_ends
  FROM game_events
  GROUP BY game, derived_at::DATE
)
SELECT
  d.game,
  d.day,
  d.dau,
  COALESCE(n.new_players, 0) AS new_players,
  s.sessions,
  CASE WHEN s.session_ends > 0 THEN ROUND(s.session_ms::NUMBER(38, 6) / s.session_ends / 1000, 1) END
    AS avg_session_seconds
FROM (SELECT game, day, COUNT(*) AS dau FROM player_days GROUP BY game, day) d
JOIN sessions s ON s.game = d.game AND s.day = d.day
LEFT JOIN (
  SELECT game, first_day, COUNT(*) AS new_players FROM first_days GROUP BY game, first_day
) n ON n.game = d.game AND n.first_day = d.day;

CREATE OR REPLACE VIEW game_kpi_revenue
  COMMENT = 'Player event tracker: purchases, paying players, revenue and ad revenue in the base currency, ARPDAU, per game and UTC day'
AS
SELECT
  game,
  derived_at::DATE AS day,
  SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
  COUNT(DISTINCT CASE WHEN event_type = 'purchase' THEN player_id END) AS paying_players,
  -- Purchases without a rate (revenue_base NULL) are left out until reconvert sends them again.
  ROUND(COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN revenue_base END), 0), 2) AS revenue_base,
  ROUND(COALESCE(SUM(CASE WHEN event_type = 'ad_impression' THEN revenue_base END), 0), 6) AS ad_revenue_base,
  ROUND(
    COALESCE(SUM(CASE WHEN event_type IN ('purchase', 'ad_impression') THEN revenue_base END), 0)
      / COUNT(DISTINCT player_id),
    4
  ) AS arpdau
FROM game_events
GROUP BY game, derived_at::DATE;

CREATE OR REPLACE VIEW game_kpi_cohorts
  COMMENT = 'Player event tracker: players by install day (first event) and the share active again on day +1, +7 and +30'
AS
WITH player_days AS (
  SELECT DISTINCT game, player_id, derived_at::DATE AS day FROM game_events
),
first_days AS (
  SELECT game, player_id, MIN(day) AS first_day FROM player_days GROUP BY game, player_id
),
returns AS (
  SELECT
    f.game,
    f.first_day,
    f.player_id,
    MAX(CASE WHEN p.day = DATEADD(day, 1, f.first_day) THEN 1 ELSE 0 END) AS d1,
    MAX(CASE WHEN p.day = DATEADD(day, 7, f.first_day) THEN 1 ELSE 0 END) AS d7,
    MAX(CASE WHEN p.day = DATEADD(day, 30, f.first_day) THEN 1 ELSE 0 END) AS d30
  FROM first_days f
  JOIN player_days p ON p.game = f.game AND p.player_id = f.player_id
  GROUP BY f.game, f.first_day, f.player_id
)
SELECT
  game,
  first_day AS cohort_day,
  COUNT(*) AS new_players,
  CASE WHEN DATEADD(day, 1, first_day) < CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::DATE THEN ROUND(SUM(d1)::NUMBER(38, 12) / COUNT(*), 4) END
    AS retention_d1,
  CASE WHEN DATEADD(day, 7, first_day) < CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::DATE THEN ROUND(SUM(d7)::NUMBER(38, 12) / COUNT(*), 4) END
    AS retention_d7,
  CASE WHEN DATEADD(day, 30, first_day) < CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::DATE THEN ROUND(SUM(d30)::NUMBER(38, 12) / COUNT(*), 4) END
    AS retention_d30
FROM returns
GROUP BY game, first_day;
