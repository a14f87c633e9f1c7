"""The stream bench written in Verilog: the same driver, monitor and gather memory as the
cocotb agents (:mod:`sim.agents`, :mod:`sim.gather`), clocked inside the simulator.

The cocotb bench runs its agents in Python twice per clock cycle, about 40,000 cycles/s
on Verilator and 5,000 on Icarus (``bench/bench_sim.py``); a regression of a million
tokens through a layer design is hours of that. This bench is a Verilog top module,
``lqer_hdl_bench``, instantiating the design: it reads the input items from a hex file
(``$fscanf``, one payload per line), presents them with random valid stalls, takes the
output items with random ready back-pressure and writes them to a hex file, and answers a
gather port (``req`` / ``resp``) from a ``$readmemh`` image of the weight memory with the
latency and ordering of :class:`sim.gather.GatherModel`. The clock and reset are made
in the Verilog (Verilator builds it with ``--timing``); Python (:mod:`sim.cocotb_hdl_bench`)
only waits for ``done`` and compares the output file with the reference, so the simulator
runs at its own speed, with no callback per cycle.

Randomness: one xorshift32 generator per decision (input valid, output ready, request
ready, response valid), seeded from ``+seed``; a decision is taken when the generator's
low 16 bits are below the probability in 1/65536 (65536: always). The sequence differs
from the cocotb bench's ``random.Random`` but is the same on both simulators.

Plusargs (all required; :func:`plusargs` makes them): ``+inputs`` / ``+outputs`` (hex
files), ``+memory`` (hex image of the gather memory, designs with a gather port),
``+n_inputs``, ``+n_outputs``, ``+seed``, ``+valid_p``, ``+ready_p`` (probabilities in
1/65536), ``+max_cycles`` (``timed_out`` is raised after that many cycles).

Status signals read at the end (64-bit): ``cycles`` (from reset release to the last output
item, as the cocotb bench counts), ``sent``, ``received``, ``requests`` (gather requests
taken), ``pending`` (response items not taken); ``done``, ``timed_out``, ``bad_request``
(a request for a column the memory does not hold).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOP", "DRAIN_CYCLES", "QUEUE_DEPTH", "Gather", "bench_verilog", "plusargs",
           "probability_code"]

#: module name of the bench top
TOP = "lqer_hdl_bench"
#: cycles run after the last expected output (nothing further may come out)
DRAIN_CYCLES = 8
#: requests the gather memory can hold queued (a design's outstanding requests are fewer)
QUEUE_DEPTH = 1024


@dataclass(frozen=True)
class Gather:
    """A gather port: request payload width and the column field in it, response payload
    width, columns held, response items per column and the memory latency (cycles from a
    request taken to its first response item, >= 1; :class:`sim.gather.GatherModel`)."""

    req_width: int
    column_offset: int
    column_width: int
    resp_width: int
    columns: int
    pieces: int
    latency: int

    def __post_init__(self):
        if self.latency < 1:
            raise ValueError(f"latency must be at least 1; got {self.latency}")
        if self.columns < 1 or self.pieces < 1:
            raise ValueError("a gather memory needs at least one column and one item per "
                             "column")


def probability_code(p: float) -> int:
    """``p`` in (0, 1] as the bench's threshold in 1/65536 (1.0 -> 65536: always)."""
    if not 0 < p <= 1:
        raise ValueError(f"probability must be in (0, 1]; got {p}")
    return max(1, round(p * 65536))


def plusargs(*, inputs, outputs, n_inputs: int, n_outputs: int, seed: int,
             valid_probability: float, ready_probability: float, max_cycles: int,
             memory=None) -> list[str]:
    """The plusargs of one run (see the module doc)."""
    args = [f"+inputs={inputs}", f"+outputs={outputs}", f"+n_inputs={n_inputs}",
            f"+n_outputs={n_outputs}", f"+seed={seed & 0xFFFFFFFF}",
            f"+valid_p={probability_code(valid_probability)}",
            f"+ready_p={probability_code(ready_probability)}", f"+max_cycles={max_cycles}"]
    if memory is not None:
        args.append(f"+memory={memory}")
    return args


_XORSHIFT = """
  function [31:0] xorshift(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift = y ^ (y << 5);
    end
  endfunction
"""


def bench_verilog(dut: str, in_width: int, out_width: int, gather: Gather | None = None) -> str:
    """Verilog of the bench top :data:`TOP` around module ``dut`` (ports ``clk``, ``rst``,
    ``i__{valid,ready,payload}``, ``o__{...}`` and, with ``gather``, ``req__{...}``,
    ``resp__{...}``, as Amaranth names a component's stream ports)."""
    if in_width < 1 or out_width < 1:
        raise ValueError("payload widths must be positive")
    g = gather
    gather_ports = ""
    gather_decls = ""
    gather_reset = ""
    gather_edge = ""
    gather_next = ""
    gather_init = ""
    if g is not None:
        gather_ports = (",\n    .req__valid(req_valid), .req__ready(req_ready), "
                        ".req__payload(req_payload),\n    .resp__valid(resp_valid), "
                        ".resp__ready(resp_ready), .resp__payload(resp_payload)")
        gather_decls = f"""
  wire req_valid; reg req_ready; wire [{g.req_width - 1}:0] req_payload;
  reg resp_valid; wire resp_ready; reg [{g.resp_width - 1}:0] resp_payload;
  reg [{g.resp_width - 1}:0] memory [0:{g.columns * g.pieces - 1}];
  reg [31:0] queue_column [0:{QUEUE_DEPTH - 1}];
  reg [63:0] queue_time [0:{QUEUE_DEPTH - 1}];
  integer head, tail, piece;
  reg [31:0] rng_req, rng_resp;
  reg [31:0] column;
  reg resp_taken;"""
        gather_init = """
    if (!$value$plusargs("memory=%s", path)) $fatal(1, "lqer_hdl_bench: +memory= missing");
    $readmemh(path, memory);"""
        gather_reset = """
      req_ready <= 1'b0; resp_valid <= 1'b0; resp_payload <= 0;
      head = 0; tail = 0; piece = 0;
      rng_req = seed ^ 32'h85ebca6b; rng_resp = seed ^ 32'hc2b2ae35;
      if (rng_req == 0) rng_req = 1;
      if (rng_resp == 0) rng_resp = 1;"""
        gather_edge = f"""
      // gather: a request taken at this edge queues its column's items
      if (req_valid && req_ready) begin
        column = req_payload[{g.column_offset + g.column_width - 1}:{g.column_offset}];
        if (column >= {g.columns} || tail - head >= {QUEUE_DEPTH}) bad_request = 1'b1;
        else begin
          queue_column[tail % {QUEUE_DEPTH}] = column;
          queue_time[tail % {QUEUE_DEPTH}] = edge_cycle + {g.latency};
          tail = tail + 1;
          requests = requests + 1;
          pending = pending + {g.pieces};
        end
      end
      resp_taken = resp_valid && resp_ready;
      if (resp_taken) begin
        pending = pending - 1;
        if (piece == {g.pieces - 1}) begin piece = 0; head = head + 1; end
        else piece = piece + 1;
      end"""
        gather_next = f"""
      rng_req = xorshift(rng_req);
      req_ready <= chance(rng_req, ready_p);
      if (!resp_valid || resp_taken) begin
        rng_resp = xorshift(rng_resp);
        if (head != tail && queue_time[head % {QUEUE_DEPTH}] <= edge_cycle + 1
            && chance(rng_resp, valid_p)) begin
          resp_valid <= 1'b1;
          resp_payload <= memory[queue_column[head % {QUEUE_DEPTH}] * {g.pieces} + piece];
        end else resp_valid <= 1'b0;
      end"""
    return f"""// generated by sim/hdl_bench.py: the stream bench of {dut} in Verilog
`timescale 1ns/1ps
module {TOP} (
  output reg done,
  output reg timed_out,
  output reg bad_request,
  output reg [63:0] cycles,
  output reg [63:0] sent,
  output reg [63:0] received,
  output reg [63:0] requests,
  output reg [63:0] pending
);
  // the clock and reset are made here (period 10 ns, reset for 3 cycles): the simulator
  // runs on its own, with no callback into Python per cycle
  reg clk = 1'b0;
  reg rst = 1'b1;
  always #5 clk = ~clk;
  initial begin
    repeat (3) @(posedge clk);
    rst <= 1'b0;
  end
  reg i_valid; wire i_ready; reg [{in_width - 1}:0] i_payload;
  wire o_valid; reg o_ready; wire [{out_width - 1}:0] o_payload;{gather_decls}
  reg [{in_width - 1}:0] item;
  reg [8*4096-1:0] path;
  integer fin, fout, code, drain;
  reg [63:0] n_inputs, n_outputs, max_cycles, edge_cycle;
  reg [31:0] seed, valid_p, ready_p, rng_in, rng_out;
  reg in_taken;

  {dut} dut (
    .clk(clk), .rst(rst),
    .i__valid(i_valid), .i__ready(i_ready), .i__payload(i_payload),
    .o__valid(o_valid), .o__ready(o_ready), .o__payload(o_payload){gather_ports}
  );
{_XORSHIFT}
  function chance(input [31:0] x, input [31:0] p);
    chance = {{16'd0, x[15:0]}} < p;
  endfunction

  initial begin
    if (!$value$plusargs("n_inputs=%d", n_inputs)) $fatal(1, "lqer_hdl_bench: +n_inputs= missing");
    if (!$value$plusargs("n_outputs=%d", n_outputs)) $fatal(1, "lqer_hdl_bench: +n_outputs= missing");
    if (!$value$plusargs("max_cycles=%d", max_cycles)) $fatal(1, "lqer_hdl_bench: +max_cycles= missing");
    if (!$value$plusargs("seed=%d", seed)) $fatal(1, "lqer_hdl_bench: +seed= missing");
    if (!$value$plusargs("valid_p=%d", valid_p)) $fatal(1, "lqer_hdl_bench: +valid_p= missing");
    if (!$value$plusargs("ready_p=%d", ready_p)) $fatal(1, "lqer_hdl_bench: +ready_p= missing");
    if (!$value$plusargs("inputs=%s", path)) $fatal(1, "lqer_hdl_bench: +inputs= missing");
    fin = $fopen(path, "r");
    if (fin == 0) $fatal(1, "lqer_hdl_bench: cannot open the inputs");
    if (!$value$plusargs("outputs=%s", path)) $fatal(1, "lqer_hdl_bench: +outputs= missing");
    fout = $fopen(path, "w");
    if (fout == 0) $fatal(1, "lqer_hdl_bench: cannot open the outputs");{gather_init}
  end

  always @(posedge clk) begin
    if (rst) begin
      i_valid <= 1'b0; i_payload <= 0; o_ready <= 1'b0;
      done = 1'b0; timed_out = 1'b0; bad_request = 1'b0;
      cycles = 0; sent = 0; received = 0; requests = 0; pending = 0; edge_cycle = 0;
      drain = 0;
      rng_in = seed ^ 32'h9e3779b9; rng_out = seed ^ 32'h7f4a7c15;
      if (rng_in == 0) rng_in = 1;
      if (rng_out == 0) rng_out = 1;{gather_reset}
    end else if (!done) begin
      // transfers at this edge
      in_taken = i_valid && i_ready;
      if (in_taken) sent = sent + 1;
      if (o_valid && o_ready) begin
        $fwrite(fout, "%h\\n", o_payload);
        received = received + 1;
        cycles = edge_cycle + 1;
      end{gather_edge}
      // what the design sees in the next cycle
      if (!i_valid || in_taken) begin
        rng_in = xorshift(rng_in);
        if (sent < n_inputs && chance(rng_in, valid_p)) begin
          code = $fscanf(fin, "%h\\n", item);
          if (code != 1) $fatal(1, "lqer_hdl_bench: the inputs file ended early");
          i_valid <= 1'b1;
          i_payload <= item;
        end else i_valid <= 1'b0;
      end
      rng_out = xorshift(rng_out);
      o_ready <= chance(rng_out, ready_p);{gather_next}
      edge_cycle = edge_cycle + 1;
      if (received >= n_outputs && sent == n_inputs) drain = drain + 1;
      if (drain > {DRAIN_CYCLES} || edge_cycle >= max_cycles) begin
        if (drain <= {DRAIN_CYCLES}) timed_out = 1'b1;
        done = 1'b1;
        $fclose(fout);
        $fclose(fin);
      end
    end
  end
endmodule
"""
