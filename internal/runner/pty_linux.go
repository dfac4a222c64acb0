package runner

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ptyPair is a pseudo-terminal: the master end stays with the runner, the slave end becomes the
// session's controlling terminal.
type ptyPair struct {
	master *os.File
	slave  *os.File
}

// openPTY allocates a pseudo-terminal through /dev/ptmx.
func openPTY() (*ptyPair, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	var n int
	var ioctlErr error
	rc, err := master.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr != nil {
				return
			}
			n, ioctlErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		})
	}
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		master.Close()
		return nil, err
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, err
	}
	return &ptyPair{master: master, slave: slave}, nil
}

func (p *ptyPair) resize(cols, rows uint32) {
	if cols == 0 || rows == 0 {
		return
	}
	rc, err := p.master.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)})
	})
}

func (p *ptyPair) close() {
	if p.slave != nil {
		p.slave.Close()
	}
	p.master.Close()
}
