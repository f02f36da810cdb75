"""previewer.render.admission: render slots, the queue bound, and the counts behind /health."""

from __future__ import annotations

import threading

import pytest

from previewer.errors import Overloaded
from previewer.render.admission import Admission, AdmissionState


def test_admits_up_to_slots_plus_queue_then_refuses_with_503() -> None:
    admission = Admission(slots=2, queue_size=1)
    tickets = [admission.admit() for _ in range(3)]
    with pytest.raises(Overloaded) as refused:
        admission.admit()
    assert refused.value.status == 503
    assert "3 renders" in refused.value.detail
    assert admission.state() == AdmissionState(running=0, waiting=3)
    tickets[0].finish()
    admission.admit()  # a place came free


def test_tickets_move_from_waiting_to_running_to_done() -> None:
    admission = Admission(slots=1, queue_size=4)
    first, second = admission.admit(), admission.admit()
    first.start()
    assert admission.state() == AdmissionState(running=1, waiting=1)
    first.finish()
    assert admission.state() == AdmissionState(running=0, waiting=1)
    second.finish()  # dropped before it started
    assert admission.state() == AdmissionState(running=0, waiting=0)


def test_each_step_counts_once() -> None:
    admission = Admission(slots=1, queue_size=0)
    ticket = admission.admit()
    ticket.start()
    ticket.start()
    ticket.finish()
    ticket.finish()
    ticket.start()  # too late: the ticket is done
    assert admission.state() == AdmissionState(running=0, waiting=0)


def test_no_queue_means_slots_only() -> None:
    admission = Admission(slots=2, queue_size=0)
    admission.admit()
    admission.admit()
    with pytest.raises(Overloaded):
        admission.admit()


@pytest.mark.parametrize(("slots", "queue_size"), [(0, 1), (1, -1)])
def test_bad_bounds_are_refused(slots: int, queue_size: int) -> None:
    with pytest.raises(ValueError, match=r"slots|queue_size"):
        Admission(slots, queue_size)


def test_counts_stay_exact_across_threads() -> None:
    admission = Admission(slots=4, queue_size=4)
    start = threading.Barrier(8)
    refused = []

    def work() -> None:
        start.wait()
        for _ in range(2000):
            try:
                ticket = admission.admit()
            except Overloaded:
                refused.append(1)
                continue
            ticket.start()
            ticket.finish()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused == []  # 8 threads never hold more than 8 tickets
    assert admission.state() == AdmissionState(running=0, waiting=0)
