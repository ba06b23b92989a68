module ciobench/peers/go

go 1.19
