"""/health/'s queue counts only tasks no worker has taken (django-q2's ORM broker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from crsrisk.jobs.health import health_report

pytestmark = pytest.mark.django_db


def test_a_task_being_run_is_not_counted_as_waiting():
    broker = get_broker()
    broker.enqueue("payload")
    taken = broker.dequeue()  # a worker takes it: the broker pushes its lock to now + retry
    assert taken and OrmQ.objects.get().lock > timezone.now()
    OrmQ.objects.create(key=broker.list_key, payload="other", lock=timezone.now() - timedelta(seconds=30))
    queue = health_report()["queue"]
    assert queue["waiting"] == 1
    assert 29 <= queue["oldest_waiting_seconds"] < 60
