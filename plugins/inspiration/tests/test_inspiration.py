"""The daily inspiration card: pushed at 20:00 by default, or at the configured time and zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from sundial.testing import PluginHarness
from sundial_inspiration.plugin import InspirationPlugin, cards, pushes, subscribers
from sundial_letters import notifications
from sundial_letters.plugin import LettersPlugin

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def make(url: str, **config: str) -> PluginHarness:
    plugins = [("letters", LettersPlugin()), ("inspiration", InspirationPlugin())]
    h = PluginHarness(url, plugins, start=START, config={"inspiration": config})
    with h.domain.begin() as conn:
        conn.execute(insert(cards), [{"id": 1, "text": "Describe your window."}, {"id": 2, "text": "Write to 2036."}])
        conn.execute(insert(subscribers), [{"user_id": 5, "channel": "app"}, {"user_id": 6, "channel": "email"}])
    return h


def test_the_card_is_pushed_at_eight_in_the_evening_once_a_day(sundial_database_url: str) -> None:
    h = make(sundial_database_url)
    try:
        h.clock.set(START + timedelta(hours=19, minutes=59))
        assert "inspiration.push_card" not in [r.job_id for r in h.tick()]
        h.clock.set(START + timedelta(hours=20))
        [run] = [r for r in h.tick() if r.job_id == "inspiration.push_card"]
        h.engine.control.run_now("inspiration.push_card")  # a second push the same evening changes nothing
        h.clock.set(START + timedelta(days=1, hours=20))
        h.tick()
        with h.domain.connect() as conn:
            pushed = sorted((p.user_id, p.day, p.card_id) for p in conn.execute(select(pushes)))
            sent = sorted((n.user_id, n.channel) for n in conn.execute(select(notifications)))
        today, tomorrow = START.date(), START.date() + timedelta(days=1)
        card_today, card_tomorrow = 1 + today.toordinal() % 2, 1 + tomorrow.toordinal() % 2
        assert pushed == [(5, today, card_today), (5, tomorrow, card_tomorrow),
                          (6, today, card_today), (6, tomorrow, card_tomorrow)]  # fmt: skip
        assert sent == [(5, "app"), (5, "app"), (6, "email"), (6, "email")]
    finally:
        h.close()


def test_the_push_time_and_zone_are_configurable(sundial_database_url: str) -> None:
    h = make(sundial_database_url, push_cron="0 8 * * *", timezone="Asia/Shanghai")
    try:
        assert h.engine.store.get_job("inspiration.push_card").next_run_at == START  # 08:00 in Shanghai
    finally:
        h.close()
