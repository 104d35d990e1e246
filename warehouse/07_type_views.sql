-- 07 One view per event type, generated from the event type registry
-- (events_app/event_types/) when this file is printed: game_events_<type> has the
-- rows of game_events (06) of that type, one per event, with the event's columns,
-- the revenue columns if the type carries revenue, and the type's own typed columns
-- read from properties. game_events_custom has the events of every custom type, with
-- event_schema_version; their properties stay VARIANT, as each game's JSON Schema
-- shapes them. Not edited by hand: a type declares its warehouse_columns and this
-- file is printed and run again (warehouse/README.md, "Per-type views").
USE SCHEMA {{database}}.{{schema}};

{{type_views}}
