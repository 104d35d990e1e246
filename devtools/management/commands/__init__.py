"""The commands of the devtools app, present only in a development checkout."""
