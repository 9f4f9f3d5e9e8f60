#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""A Modbus TCP server (pymodbus) standing in for a PLC in the tests of defectmodbussink.

It listens on 127.0.0.1:PORT and writes one JSON line to stdout per request that writes a
coil or registers, with the time it was handled on CLOCK_MONOTONIC in microseconds (the clock
of g_get_monotonic_time(), so the Rust tests compare it with their own readings):

    {"t_us": 123456789, "fc": 5, "address": 0, "values": [true]}

The first line is {"ready": PORT} once it listens. With --encoder-register N the holding
register N reads as a belt encoder running at --encoder-rate counts per second (16 bits,
wrapping), counted from the server's start.
"""

import argparse
import asyncio
import json
import sys
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

WRITE_FUNCTIONS = {5, 6, 15, 16}


def now_us() -> int:
    return time.monotonic_ns() // 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--encoder-register", type=int, default=-1)
    parser.add_argument("--encoder-rate", type=float, default=1000.0)
    args = parser.parse_args()
    started = time.monotonic()

    async def action(function_code, start_address, address, count, registers, values):
        if function_code in WRITE_FUNCTIONS and values is not None:
            record = {
                "t_us": now_us(),
                "fc": function_code,
                "address": address,
                "values": [int(v) if not isinstance(v, bool) else v for v in values],
            }
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        elif function_code == 3 and args.encoder_register >= 0:
            offset = args.encoder_register - start_address
            if 0 <= offset < len(registers):
                registers[offset] = int((time.monotonic() - started) * args.encoder_rate) & 0xFFFF
        return None

    device = SimDevice(
        id=0,
        simdata=(
            [SimData(0, count=256, values=False, datatype=DataType.BITS)],
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            [SimData(0, count=256, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", args.port))
    task = asyncio.create_task(server.serve_forever())
    # serve_forever() binds first; report readiness once the port accepts connections.
    for _ in range(500):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", args.port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.01)
    sys.stdout.write(json.dumps({"ready": args.port}) + "\n")
    sys.stdout.flush()
    await task


if __name__ == "__main__":
    asyncio.run(main())
