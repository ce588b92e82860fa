# The concurrency sweep as two PNGs: throughput and p99 latency against the
# number of wrk connections, one line per server (plaintext `/`).
#
#   gnuplot -e "data='sweep.dat'; out='bench/results'" bench/plot.gp
#
# `data` is bench/report.py's sweep file: one block per server, blocks
# separated by two blank lines, each opening with a header line naming the
# server, then "concurrency req/s p99-ms". Both axes are logarithmic: the
# servers span two orders of magnitude in req/s, and concurrency doubles
# and quadruples.

set terminal pngcairo size 960,600 noenhanced font "DejaVu Sans,12"
# Dark, distinct colours (ColorBrewer Dark2 and grey): no pale yellow line.
colours = "#1b9e77 #d95f02 #7570b3 #e7298a #66a61e #a6761d #e6ab02 #666666"
do for [i=1:8] { set linetype i lc rgb word(colours, i) }
set key outside right top box
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set logscale x 2
set logscale y 10
set xlabel "concurrent connections (wrk -c)"
set pointsize 1.2
stats data using 1 nooutput
servers = STATS_blocks

set output out."/throughput.png"
set title "Plaintext throughput, one worker process on one core"
set ylabel "requests per second"
set format y "%.0s%c"
plot for [i=0:servers-1] data index i using 1:2 with linespoints lw 2 title columnheader(2)

set output out."/p99.png"
set title "Plaintext p99 latency, one worker process on one core"
set ylabel "p99 latency (ms)"
set format y "%g"
plot for [i=0:servers-1] data index i using 1:3 with linespoints lw 2 title columnheader(2)
