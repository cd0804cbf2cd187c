"""A small asyncio TCP replay server for the miner driver tests (not the simulated miner).

It behaves like cgminer on the wire: one request per connection, a single read of the request, the
reply in the form of the request (JSON or `cmd|param` text) followed by a NUL, then close. Canned
replies are looked up by ``"command|parameter"`` first, then by ``"command"``; unknown commands get
cgminer's E/14 "Invalid command". A reply can also be HANG (never answer), CLOSE (close without a reply)
or raw bytes sent verbatim. Every request is recorded in `requests`.

The real miner replies at the bottom (SAMPLES) are copied verbatim from the stored reference samples
(../shared/reference/miner-samples), each with its public source, so the repository's tests are self-contained.
"""

# ruff: noqa: E501

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HANG = "<hang>"
CLOSE = "<close>"


@dataclass(frozen=True)
class Received:
    form: str  # "json" or "text"
    command: str
    parameter: str | None
    raw: bytes

    def __str__(self) -> str:
        return self.command if self.parameter is None else f"{self.command}|{self.parameter}"


def free_tcp_port() -> int:
    """A loopback port with nothing listening (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_reply(letter: str, code: int, msg: str, when: int = 1753434000, **sections: Any) -> dict[str, Any]:
    """A JSON-shaped reply object: STATUS plus sections (each a list of dicts)."""
    reply: dict[str, Any] = {
        "STATUS": [{"STATUS": letter, "When": when, "Code": code, "Msg": msg, "Description": "cgminer 4.11.1"}]
    }
    reply.update(sections)
    reply["id"] = 1
    return reply


def invalid_command(when: int = 1753434000) -> dict[str, Any]:
    return status_reply("E", 14, "Invalid command", when)


def set_ok(when: int = 1753434000) -> dict[str, Any]:
    return status_reply("S", 119, "ASC 0 set OK", when)


def set_failed(text: str, when: int = 1753434000) -> dict[str, Any]:
    return status_reply("E", 120, f"ASC 0 set failed: {text}", when)


def render_text(reply: dict[str, Any]) -> str:
    """The plain-text form of a JSON-shaped reply (values not escaped, as Avalon firmware sends MM ID0)."""

    def items(d: dict[str, Any]) -> str:
        return ",".join(f"{k}={_text_value(v)}" for k, v in d.items())

    parts = [items(reply["STATUS"][0])]
    for name, entries in reply.items():
        if name in ("STATUS", "id"):
            continue
        for entry in entries:
            if name in entry:
                ordered = {name: entry[name], **{k: v for k, v in entry.items() if k != name}}
                parts.append(items(ordered))
            else:
                parts.append(",".join([name, items(entry)]) if entry else name)
    return "|".join(parts) + "|"


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def parse_request(raw: bytes) -> Received:
    text = raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return Received("json", "", None, raw)
        param = obj.get("parameter")
        return Received("json", str(obj.get("command", "")), None if param is None else str(param), raw)
    command, sep, parameter = text.partition("|")
    return Received("text", command, parameter if sep else None, raw)


Handler = Callable[[Received], Any]


@dataclass
class ReplayServer:
    """Serve canned replies on 127.0.0.1:<free port>. `replies` values: dict (rendered in the request's
    form), str (sent as-is plus NUL), bytes (verbatim), HANG, CLOSE, or a callable(Received) → one of those."""

    replies: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    max_concurrent: int = 0
    delay_s: float = 0.0  # wait before answering (to expose concurrent requests)
    _active: int = 0
    _server: asyncio.Server | None = None
    _release: asyncio.Event | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> ReplayServer:
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._release is not None:
            self._release.set()  # let hung handlers finish
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ReplayServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def lookup(self, req: Received) -> Any:
        for key in (str(req), req.command):
            if key in self.replies:
                value = self.replies[key]
                return value(req) if callable(value) else value
        return invalid_command()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connections += 1
        self._active += 1
        self.max_concurrent = max(self.max_concurrent, self._active)
        try:
            raw = await reader.read(8192)  # cgminer does a single recv of the request
            if not raw:
                return
            req = parse_request(raw)
            self.requests.append(req)
            answer = self.lookup(req)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if answer == HANG:
                assert self._release is not None
                await self._release.wait()
                return
            if answer == CLOSE:
                return
            if isinstance(answer, dict):
                payload = (json.dumps(answer) if req.form == "json" else render_text(answer)).encode() + b"\x00"
            elif isinstance(answer, str):
                payload = answer.encode() + b"\x00"
            else:
                payload = bytes(answer)
            writer.write(payload)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._active -= 1
            writer.close()


class ThreadedReplayServer:
    """A ReplayServer on its own event loop in a thread (for code that calls asyncio.run itself, e.g. the CLI)."""

    def __init__(self, replies: dict[str, Any] | None = None) -> None:
        self.server = ReplayServer(replies=dict(replies or {}))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def requests(self) -> list[Received]:
        return self.server.requests

    def __enter__(self) -> ThreadedReplayServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def sample_reply(text: str) -> dict[str, Any]:
    """A stored JSON sample as a reply object (so it can be served in both forms)."""
    value: dict[str, Any] = json.loads(text)
    return value


# --------------------------------------------------------------------------------------------------
# SAMPLES: real replies (JSON samples compacted; text samples verbatim without their NUL)
# --------------------------------------------------------------------------------------------------

# source: GitHub issue UpstreamData/pyasic#312 "Add support for Avalon Mini 3" (hanleyp, 2025-03-18) https://github.com/UpstreamData/pyasic/issues/312
MINI3_VERSION_TEXT = 'STATUS=S,When=1742265580,Code=22,Msg=CGMiner versions,Description=cgminer 4.11.1|VERSION,CGMiner=4.11.1,API=3.7,PROD=Avalon Mini3,MODEL=Mini3,HWTYPE=M_MM1v1_X1,SWTYPE=MM319,LVERSION=25011701_3f53b19,BVERSION=25011701_3f53b19,CGVERSION=25011701_3f53b19,MCUVERSION=Mini3_hb_v1.0,DNA=020100008644e532,MAC=e0e1a93e2c7d|'

# source: GitHub issue UpstreamData/pyasic#312 https://github.com/UpstreamData/pyasic/issues/312
MINI3_STATS_PARTIAL_TEXT = 'STATUS=S,When=1742265634,Code=70,Msg=CGMiner stats,Description=cgminer 4.11.1|STATS=0,ID=AVALON0,Elapsed=32260,Calls=0,Wait=0.000000,Max=0.000000,Min=99999999.000000,MM ID0=HashStatus[0] Ver[Mini3-25011701_3f53b19] LVer[25011701_3f53b19] BVer[25011701_3f53b19] Mcu0Ver[Mini3_hb_v1.0] FW[Release] DNA[020100008644e532] MEMFREE[64584] NETFAIL[0 0 0 0 0 0 0 0] SYSTEMSTATU[Work: In Work, Hash Board: 1] Elapsed[32273] BOOTBY[0x02.00000000] LW[25418634] MH[62] DHW[0] HW[62] DH[1.768%] ITemp[39] OTemp[63] HBTemp[75] TMax[86] TAvg[82] TarT[75] Fan1[3000] FanR[100%] PS[0 1210 2083 37 760 2085 824] PCOMM...'

# source: github.com/dcbert/miner-sentinel @ 989c5ac81f2b93ae240e80ed52c1465ecd1f6435 : data-service/tests/test_parsing.py ("Sample data from the actual device response")
NANO3S_MM_ID0 = 'Ver[Nano3s-25021401_56abae7] LVer[25021401_56abae7] BVer[25021401_56abae7] FW[Release] LED[0-0] LEDUser[0-100-100-5-0-255] LcdOnoff[1] LcdSwitch[2] DNA[02010000bd448216] MEMFREE[63728] PFCnt[0] NETFAIL[0 0 0 0 0 0 0 0] SYSTEMSTATU[Work: In Work, Hash Board: 1] Elapsed[10027] BOOTBY[0x01.00000000] LW[7753951] MH[0] DHW[0] HW[0] DH[2.374%] ITemp[-273] OTemp[65] TMax[95] TAvg[90] TarT[90] Fan1[1520] FanR[33%] PS[0 0 27541 4 0 3756 133] GHSspd[6598.84] DHspd[2.374%] GHSmm[6783.65] GHSavg[6695.18] WU[93530.53] Freq[464.89] MGHS[6695.18] MTmax[95] MTavg[90] TA[12] Core[A3197S] BIN[60] PING[78] SoftOFF[0] ECHU[0] ECMM[0] PLL0[499 254 423 648] SF0[432 450 471 492] PVT_T0[ 85  91  91  91  91  90  85  86  95  95  91  87] PVT_V0[299 303 301 303 300 301 306 301 297 296 303 305] MW0[321 338 337 334 296 338 294 322 309 283 318 321] CRC[0] COMCRC[0] ATA2[133-90-3756-432-20] WORKMODE[2] WORKLEVEL[0] MPO[133] CALIALL[7] ADJ[1]'

# source: github.com/LW10583/AvalonMinerTools @ c52aba6f30a68f79b12d9db4f7e80a177d098c14 : AVALON_MINER_API_DOCUMENTATION.md ("Real Response Example (Avalon Nano3s)", firmware 25021401_56abae7)
NANO3S_VERSION_JSON = '{"STATUS":[{"STATUS":"S","When":1765004019,"Code":22,"Msg":"CGMiner versions","Description":"cgminer 4.11.1"}],"VERSION":[{"CGMiner":"4.11.1","API":"3.7","PROD":"Avalon Nano3s","MODEL":"Nano3s","HWTYPE":"N_MM1v1_X1","SWTYPE":"MM319","LVERSION":"25021401_56abae7","BVERSION":"25021401_56abae7","CGVERSION":"25021401_56abae7","DNA":"020100003cbe4d15","MAC":"e0e1a93f3053","UPAPI":"2"}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/version.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_VERSION_JSON = '{"STATUS":[{"Code":22,"Description":"cgminer 4.11.1","Msg":"CGMiner versions","STATUS":"S","When":1753432244}],"VERSION":[{"API":"3.7","BVERSION":"25052801_14a19a2","CGMiner":"4.11.1","CGVERSION":"25052801_14a19a2","DNA":"01234567890123456789012345678901","FANMCUVERSION":"Q_fb_v1.2","HBMCUVERSION":"Q_hb_v1.1","HWTYPE":"Q_MM1v1_X1","LVERSION":"25052801_14a19a2","MAC":"AA:BB:CC:DD:EE:FF","MODEL":"Q","PROD":"Avalon Q","SWTYPE":"MM319"}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/litestats.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_LITESTATS_STANDBY_JSON = '{"STATS":[{"MM ID0:Summary":"\'STATS\':{Ver[Q-25052801_14a19a2] LVer[25052801_14a19a2] BVer[25052801_14a19a2] HashMcu0Ver[Q_hb_v1.1] FanMcuVer[Q_fb_v1.2] CPU[K230] FW[Release] DNA[<DELETED>] STATE[2] MEMFREE[67896] NETFAIL[0 0 0 0 0 0 0 0] SSID[] RSSI[0] NetDevType[0] SYSTEMSTATU[Work: In Idle, Hash Board: 1] Elapsed[37977] BOOTBY[0x01.00000000] LW[16987598] MH[0] DHW[0] HW[0] DH[2.449%] ITemp[26] HBITemp[27] HBOTemp[27] TMax[0] TAvg[0] TarT[65] Fan1[0] Fan2[0] Fan3[0] Fan4[0] FanR[0%] SoftOffTime[1753425250] SoftOnTime[1753425190] Filter[19145] FanErr[0] SoloAllowed[1] PS[0 1221 4 0 0 2245 146] PCOMM_E[0] GHSspd[0.00] DHspd[0.000%] GHSmm[55032.79] GHSavg[44350.83] WU[619573.88] Freq[282.86] MGHS[44350.83] TA[160] Core[A3197S] BIN[36] PING[17] SoftOFF[4] ECHU[0] ECMM[0] PLL0[8843 5769 5098 4610] SF0[258 276 297 318] CRC[0] COMCRC[0] ATA0[800-65-2264-258-20] LcdOnoff[1] Activation[0] WORKMODE[0] WORKLEVEL[0] MPO[800] CALIALL[7] ADJ[1] Nonce Mask[25]}"}],"STATUS":[{"Code":70,"Description":"cgminer 4.11.1","Msg":"CGMiner stats","STATUS":"S","When":1753431749}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/stats.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_STATS_STANDBY_JSON = '{"STATS":[{"Calls":0,"Elapsed":37819,"HBinfo":"\'HB0\':{PVT_T0[ 58  59  59  61  60  58  58  62  62  60  61  61  60  61  58  60  62  60  60  60  60  57  58  60  62  58  57  60  61  62  60  62  60  60  60  63  60  59  59  59  61  64  64  62  63  65  65  66  66  64  68  66  69  68  68  68  68  68  69  69  70  69  68  67  65  69  68  67  68  69  68  67  67  68  66  65  64  65  63  63  60  64  65  62  63  66  68  65  66  66  69  69  68  68  70  68  70  69  70  68  70  71  71  71  71  69  69  71  69  69  68  69  67  69  66  67  67  63  66  64  65  66  62  65  59  59  58  61  63  60  60  62  65  62  62  64  62  62  62  63  63  62  62  64  63  63  68  64  62  62  63  62  61  62  61  60  63  61  58  60] PVT_V0[282 278 276 275 282 282 279 278 272 271 278 277 276 275 281 280 277 279 276 277 280 281 275 275 278 280 279 280 275 273 281 279 281 280 279 278 280 281 278 280 277 277 274 276 275 274 275 273 274 275 275 276 275 273 275 275 266 267 272 270 271 271 273 274 275 274 274 274 268 270 271 273 274 276 275 276 274 275 278 278 276 275 276 278 277 277 272 275 273 274 271 270 265 265 272 274 266 268 271 273 272 270 268 265 268 269 269 269 271 271 272 271 274 271 275 275 274 276 271 276 273 273 273 273 283 281 282 281 276 276 281 282 274 276 269 271 273 274 277 277 276 278 277 279 276 277 273 271 276 277 274 276 276 278 278 279 272 273 281 281] MW0[526 664 642 628 621 585 553 628 633 623 628 633 626 609 580 593 636 581 634 571 611 528 568 618 690 577 625 597 615 604 552 618 617 629 545 593 584 564 611 591 563 597 655 529 569 643 629 656 599 566 584 593 593 589 635 573 612 631 631 588 624 557 596 604 574 559 578 616 609 581 655 524 617 552 554 613 632 608 555 597 522 646 669 599 520 585 668 564 551 598 534 586 573 615 570 582 592 501 573 556 588 571 616 639 612 616 568 636 592 612 554 657 601 660 575 587 624 561 644 559 549 607 642 626 541 597 561 647 612 636 589 579 623 602 640 640 636 628 653 598 614 545 584 606 636 549 548 624 607 558 655 621 637 581 568 537 598 613 547 595]}","ID":"AVALON0","MM ID0:Summary":"\'STATS\':{Ver[Q-25052801_14a19a2] LVer[25052801_14a19a2] BVer[25052801_14a19a2] HashMcu0Ver[Q_hb_v1.1] FanMcuVer[Q_fb_v1.2] CPU[K230] FW[Release] DNA[<DELETED>] STATE[2] MEMFREE[67892] NETFAIL[0 0 0 0 0 0 0 0] SSID[] RSSI[0] NetDevType[0] SYSTEMSTATU[Work: In Idle, Hash Board: 1] Elapsed[37850] BOOTBY[0x01.00000000] LW[16987598] MH[0] DHW[0] HW[0] DH[2.449%] ITemp[26] HBITemp[27] HBOTemp[27] TMax[0] TAvg[0] TarT[65] Fan1[0] Fan2[0] Fan3[0] Fan4[0] FanR[0%] SoftOffTime[1753425250] SoftOnTime[1753425190] Filter[19143] FanErr[0] SoloAllowed[1] PS[0 1222 4 0 0 2245 146] PCOMM_E[0] GHSspd[0.00] DHspd[0.000%] GHSmm[55032.79] GHSavg[44499.41] WU[621649.53] Freq[282.86] MGHS[44499.41] TA[160] Core[A3197S] BIN[36] PING[17] SoftOFF[4] ECHU[0] ECMM[0] PLL0[8843 5769 5098 4610] SF0[258 276 297 318] CRC[0] COMCRC[0] ATA0[800-65-2264-258-20] LcdOnoff[1] Activation[0] WORKMODE[0] WORKLEVEL[0] MPO[800] CALIALL[7] ADJ[1] Nonce Mask[25]}","Max":0.0,"Min":99999999.0,"STATS":0,"Wait":0.0},{"Bytes Recv":876632,"Bytes Sent":146476,"Calls":0,"Elapsed":37819,"ID":"POOL0","Max":0.0,"Max Diff":524288.0,"Max Diff Count":60,"Min":99999999.0,"Min Diff":100000.0,"Min Diff Count":1,"Net Bytes Recv":876632,"Net Bytes Sent":146476,"Pool Attempts":0,"Pool Av":0.0,"Pool Calls":0,"Pool Max":0.0,"Pool Min":99999999.0,"Pool Wait":0.0,"STATS":1,"Times Recv":1580,"Times Sent":895,"Wait":0.0,"Work Can Roll":false,"Work Diff":524288.0,"Work Had Expire":false,"Work Had Roll Time":false,"Work Roll Time":0}],"STATUS":[{"Code":70,"Description":"cgminer 4.11.1","Msg":"CGMiner stats","STATUS":"S","When":1753431623}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/ascset_softoff.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_ASCSET_SOFTOFF_JSON = '{"STATUS":[{"Code":118,"Description":"cgminer 4.11.1","Msg":"ASC 0 set info: success softoff:1753434821","STATUS":"I","When":1753434816}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/ascset_softon.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_ASCSET_SOFTON_JSON = '{"STATUS":[{"Code":118,"Description":"cgminer 4.11.1","Msg":"ASC 0 set info: success softon:1753434757","STATUS":"I","When":1753434752}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/ascset_workmode.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_ASCSET_WORKMODE_SET_JSON = '{"STATUS":[{"Code":119,"Description":"cgminer 4.11.1","Msg":"ASC 0 set OK","STATUS":"S","When":1753434997}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/pools.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_POOLS_JSON = '{"POOLS":[{"Accepted":890,"Bad Work":0,"Best Share":354914572,"Current Block Height":907089,"Current Block Version":536870912,"Diff1 Shares":391888896,"Difficulty Accepted":368550176.0,"Difficulty Rejected":786432.0,"Difficulty Stale":0.0,"Discarded":0,"Get Failures":0,"Getworks":681,"Has GBT":false,"Has Stratum":true,"Has Vmask":true,"Last Share Difficulty":524288.0,"Last Share Time":31279,"Long Poll":"N","POOL":0,"Password":"x","Pool Rejected%":0.2129,"Pool Stale%":0.0,"Priority":0,"Proxy":"","Proxy Type":"","Quota":1,"Rejected":2,"Remote Failures":0,"Stale":0,"Status":"Alive","Stratum Active":true,"Stratum Difficulty":524288.0,"Stratum URL":"stratum+tcp://pool.example.com:4444","URL":"stratum+tcp://pool.example.com:4444","User":"worker1","Work Difficulty":524288.0,"Works":95676}],"STATUS":[{"Code":7,"Description":"cgminer 4.11.1","Msg":"1 Pool(s)","STATUS":"S","When":1753431847}],"id":1}'

# source: github.com/256foundation/asic-rs @ fdcd1018518bb48cb0ad1fd3c031d9b67fbafcb4 : asic-rs-firmwares/avalonminer/src/test/json/ascset_help.json (JSON-form cgminer API response; DNA/MAC redacted by upstream)
Q_ASCSET_HELP_JSON = '{"STATUS":[{"Code":118,"Description":"cgminer 4.11.1","Msg":"ASC 0 set info: help|voltage|fan-spd|lcd|hash-sn-read|hash-sn-write|volt-tuning|workmode|worklevel|work_mode_lvl|reboot|softon|softoff|filter-clean|facopts|faclock|activate|solo-allowed|frequency|loop|password|qr_auth|time|","STATUS":"I","When":1753431291}],"id":1}'

# source: github.com/UpstreamData/pyasic @ e2b9d35756dbcc40f40c3b1d86863e60e3d4ff13 : tests/miners_tests/backend (rpc_version)
A1566_VERSION_JSON = '{"STATUS":[{"STATUS":"S","When":986,"Code":22,"Msg":"CGMiner versions","Description":"cgminer 4.11.1"}],"VERSION":[{"CGMiner":"4.11.1","API":"3.7","STM8":"20.08.01","PROD":"AvalonMiner 15-194","MODEL":"15-194","HWTYPE":"MM4v2_X3","SWTYPE":"MM319","VERSION":"24102401_25462b2_9ddf522","LOADER":"d0d779de.00","DNA":"020100008c699117","MAC":"123456789012","UPAPI":"2"}],"id":1}'
