"""Reading a batch file: its shape is checked before any row is; hostile files get one line."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from refund_tui.commands.batch import _confirm
from refund_tui.core.batch import BatchFileError, parse_batch, plan_batch

HEADER = "provider,payment,amount,reason"
PATH = Path("refunds.csv")


def parse(text: str | bytes):
    return parse_batch(PATH, text.encode() if isinstance(text, str) else text)


def test_comma_and_semicolon_files_with_or_without_bom_read_the_same_rows():
    comma = parse(f"{HEADER}\nvesicash,VSC-1,12.50,Cancelled\r\nnovasend,tr_1,1500,\"Late, sorry\"\n")
    semicolon = parse("\ufeff" + HEADER.replace(",", ";") + "\r\nvesicash;VSC-1;12.50;Cancelled\r\n"
                      'novasend;tr_1;1500;"Late, sorry"\r\n')  # fmt: skip

    assert [line.reason for line in comma.lines] == ["Cancelled", "Late, sorry"]
    assert semicolon.lines == comma.lines
    assert semicolon.batch_id == comma.batch_id
    assert (comma.delimiter, semicolon.delimiter) == (",", ";")


def test_rows_are_numbered_from_one_after_the_header_and_empty_rows_are_skipped_but_counted():
    batch = parse(f"{HEADER},phone\n,,,\nvesicash,VSC-1,1,a\n , ,\n\nvesicash,VSC-2,2,b,0241234567\n")

    assert [(line.row, line.payment, line.phone) for line in batch.lines] == [
        (2, "VSC-1", ""), (5, "VSC-2", "0241234567"),
    ]  # fmt: skip


def test_another_row_or_order_is_another_batch():
    one = parse(f"{HEADER}\nvesicash,VSC-1,1,a\nvesicash,VSC-2,2,b\n")
    swapped = parse(f"{HEADER}\nvesicash,VSC-2,2,b\nvesicash,VSC-1,1,a\n")
    columns_moved = parse("amount,provider,payment,reason\n1,vesicash,VSC-1,a\n2,vesicash,VSC-2,b\n")

    assert one.batch_id != swapped.batch_id
    assert columns_moved.batch_id == one.batch_id  # the same refunds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (HEADER + "\n", "has a header but no rows"),
        ("provider,payment,amount\nvesicash,VSC-1,1\n", "the header lacks reason"),
        (HEADER + ",ammount\n", "unknown column 'ammount'"),
        (HEADER + ",amount\n", "a column appears twice"),
        ("vesicash,VSC-1,1,a\n", "unknown column 'vesicash'"),
        (HEADER + '\nvesicash,VSC-1,1,"unclosed\n', "not well-formed CSV"),
        (b"provider,payment,amount,reason\nvesicash,VSC-1,1,caf\xe9\n", "is not UTF-8 (line 2, byte 51)"),
        (b"\x00\x01binary", "not a text file"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused_whole_with_one_line(text, message):
    with pytest.raises(BatchFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_a_row_that_cannot_be_read_is_marked_not_guessed():
    batch = parse(f"{HEADER.replace(',', ';')}\nvesicash;VSC-1;12,500;a\nvesicash;VSC-1;1;a;extra\n")

    assert "ambiguous in a semicolon-separated file" in batch.lines[0].unreadable
    assert batch.lines[1].unreadable == "5 fields but the header has 4"


def test_a_field_with_escape_sequences_is_refused_and_never_shown_raw():
    batch = parse(f"{HEADER}\nvesicash,VSC-1,1,\x1b]0;pwned\x07Refund\x1b[31m\nvesicash,VSC-\u202e2,1,a\n")

    first, second = batch.lines
    assert (first.unreadable, first.reason) == ("reason: holds control characters or escape sequences", "Refund")
    assert (second.unreadable, second.payment) == ("payment: holds control characters or escape sequences", "VSC-2")


def test_results_go_beside_the_file():
    assert parse(f"{HEADER}\nvesicash,VSC-1,1,a\n").results_path == Path("refunds.results.csv")
    assert parse_batch(Path("d/list"), f"{HEADER}\nx,y,1,a\n".encode()).results_path == Path("d/list.results.csv")


async def test_a_live_run_asks_to_type_the_number_of_refunds_and_names_the_totals(sandbox, session):
    ghs = sandbox.create_payment("vesicash", 300, "GHS", "+233241234567")
    xof = sandbox.create_payment("novasend", 20000, "XOF", "+2250701234567")
    batch = parse(f"{HEADER}\nvesicash,{ghs},100,a\nvesicash,{ghs},50.50,b\nnovasend,{xof},2000,c\n")
    plan = await plan_batch(session.service, batch)

    @click.command()
    def confirm() -> None:
        _confirm(plan, live=True)
        click.echo("confirmed")

    assert [(repeat.row, repeat.reason) for repeat in plan.repeats] == []
    wrong = CliRunner().invoke(confirm, input="150.50\n")
    right = CliRunner().invoke(confirm, input="3\n")

    assert "LIVE: 3 refunds totalling 150.50 GHS, 2,000 XOF" in right.output
    assert right.output.endswith("confirmed\n")
    assert wrong.exit_code == 1
    assert "refused: the number typed does not match: nothing was sent" in wrong.output
    assert "confirmed" not in wrong.output


async def test_a_row_repeating_an_earlier_one_exactly_is_pointed_out(sandbox, session):
    ghs = sandbox.create_payment("vesicash", 300, "GHS", "+233241234567")
    batch = parse(f"{HEADER}\nvesicash,{ghs},10,Late\nvesicash,{ghs},10,Other\nvesicash,{ghs},10.00, Late\n")

    plan = await plan_batch(session.service, batch)

    assert len(plan.ready) == 3  # sent all the same: a file may mean it
    assert [(repeat.row, repeat.reason) for repeat in plan.repeats] == [(3, "repeats row 1 exactly: check it is meant")]
