// Package netaddr turns listener addresses into addresses clients can use.
package netaddr

import (
	"net"
	"strconv"
)

// Advertised is the host:port clients should use for a listener: a wildcard
// address (0.0.0.0, ::) becomes the matching loopback address, which is
// also the only plain-http host the MCP SDKs fetch OAuth metadata from.
func Advertised(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}
