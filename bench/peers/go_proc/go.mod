module cio/bench/peers/go_proc

go 1.19
