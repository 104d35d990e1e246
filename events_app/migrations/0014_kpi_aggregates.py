"""Daily KPI aggregates per game (KpiDay) and the players' activity bitmaps (KpiPlayer), kept apart from the log."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("events_app", "0013_log_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="KpiDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("dau", models.BigIntegerField(default=0)),
                ("new_players", models.BigIntegerField(default=0)),
                ("sessions", models.BigIntegerField(default=0)),
                ("session_ends", models.BigIntegerField(default=0)),
                ("session_ms", models.BigIntegerField(default=0)),
                ("purchases", models.BigIntegerField(default=0)),
                ("paying_players", models.BigIntegerField(default=0)),
                ("revenue_base", models.DecimalField(decimal_places=6, default=0, max_digits=30)),
                ("ad_revenue_base", models.DecimalField(decimal_places=6, default=0, max_digits=30)),
                ("retained_d1", models.BigIntegerField(default=0)),
                ("retained_d7", models.BigIntegerField(default=0)),
                ("retained_d30", models.BigIntegerField(default=0)),
                (
                    "game",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="events_app.game",
                    ),
                ),
            ],
            options={
                "verbose_name": "KPI day",
                "constraints": [models.UniqueConstraint(fields=("game", "day"), name="kpi_day_unique")],
            },
        ),
        migrations.CreateModel(
            name="KpiPlayer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("player_id", models.CharField(max_length=128)),
                ("first_day", models.DateField()),
                ("last_day", models.DateField()),
                ("active", models.BinaryField()),
                ("paying", models.BinaryField(default=b"")),
                (
                    "game",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="events_app.game",
                    ),
                ),
            ],
            options={
                "verbose_name": "KPI player",
                "indexes": [models.Index(fields=["last_day"], name="kpi_player_last_day_idx")],
                "constraints": [models.UniqueConstraint(fields=("game", "player_id"), name="kpi_player_unique")],
            },
        ),
    ]
