// W6h peer: Go's net/http "hello" server (run with GOMAXPROCS=1).
// Usage: go_http PORT   (0 = any; prints "serving on 127.0.0.1:PORT")
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("serving on 127.0.0.1:%d\n", ln.Addr().(*net.TCPAddr).Port)
	http.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello\n"))
	})
	http.Serve(ln, nil)
}
