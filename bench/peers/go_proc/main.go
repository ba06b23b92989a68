// Go peer of bench/proc_spawn.c and bench/proc_communicate.c (os/exec).
//
//	go_proc spawn N          spawn + wait N `true` children, 100 at a time
//	go_proc communicate MiB  stdin and stdout of cat at once, best of 3 rounds
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

func spawn(n int) {
	t0 := time.Now()
	for done := 0; done < n; {
		k := n - done
		if k > 100 {
			k = 100
		}
		cmds := make([]*exec.Cmd, k)
		for i := range cmds {
			cmds[i] = exec.Command("true")
			if err := cmds[i].Start(); err != nil {
				panic(err)
			}
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				panic(err)
			}
		}
		done += k
	}
	fmt.Printf("proc_spawn: %.3f ms/child\n", float64(time.Since(t0).Nanoseconds())/1e6/float64(n))
}

func communicate(mib int) {
	data := bytes.Repeat([]byte("x"), mib<<20)
	best := 0.0
	for r := 0; r < 3; r++ {
		cmd := exec.Command("cat")
		cmd.Stdin = bytes.NewReader(data)
		var out bytes.Buffer
		out.Grow(len(data))
		cmd.Stdout = &out
		t0 := time.Now()
		if err := cmd.Run(); err != nil || out.Len() != len(data) {
			panic(err)
		}
		if g := float64(len(data)) / float64(time.Since(t0).Nanoseconds()); g > best {
			best = g
		}
	}
	fmt.Printf("proc_communicate: %.3f GB/s\n", best)
}

func main() {
	n, _ := strconv.ParseFloat(os.Args[2], 64)
	if os.Args[1] == "spawn" {
		spawn(int(n))
	} else {
		communicate(int(n))
	}
}
