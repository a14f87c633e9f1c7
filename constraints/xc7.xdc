# Xilinx 7-series clock constraint (Vivado) for the generated designs' `clk` port.
create_clock -name clk -period 4.000 [get_ports clk]
