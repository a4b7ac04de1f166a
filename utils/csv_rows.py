"""The rows of a CSV file a user hands over, with the line each row starts on, read the same way
wherever one is read (labels, probabilities, sample submissions); one line if it cannot be."""
from __future__ import annotations

import csv

from utils.errors import UserError


def read_csv_rows(path: str, key: str = "") -> tuple[list[str], list[list[str]], list[int]]:
    """(header, rows without blank lines, the line each row starts on; the header is line 1) of the
    existing CSV at `path`. A file that is no readable UTF-8 CSV is a UserError naming the file (and
    config `key`, when the path came from one)."""
    rows, lines = [], []
    other_file = f", or set {key} to the right file" if key else ""
    # utf-8-sig: a byte-order mark, as spreadsheet programs write, is not part of the first column's name.
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
            end_of_last_row = reader.line_num
            for row in reader:
                # A row may span lines (a quoted cell holding a line break): it starts after the last one.
                if len(row) > 1 or (row and row[0].strip()):
                    rows.append(row)
                    lines.append(end_of_last_row + 1)
                end_of_last_row = reader.line_num
        except csv.Error as error:
            raise UserError(f"{path}:{reader.line_num}: not a readable CSV line ({error}); check the "
                            f"quotes{other_file}") from None
        except UnicodeDecodeError as error:
            raise UserError(f"{key + ': ' if key else ''}{path} is not a UTF-8 text file ({error.reason}); save it "
                            f"as UTF-8 CSV{other_file}") from None
    return header or [], rows, lines
