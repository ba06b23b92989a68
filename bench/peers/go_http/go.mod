module ciobench/peers/go_http

go 1.19
