# Gowin EDA clock constraint for the generated designs' `clk` port.
create_clock -name clk -period 5.000 [get_ports {clk}]
