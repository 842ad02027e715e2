// Command protoc-gen-interop is a protoc plugin that writes the interop glue
// (<name>_interop.pb.go) next to protoc-gen-go's output; see internal/gluegen.
//
//	protoc --plugin=protoc-gen-interop=BIN --interop_out=DIR --interop_opt=module=M [--interop_opt=Mfile=path;pkg] ...
package main

import (
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"

	"github.com/grpc-interop-harness/go_peer/internal/gluegen"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println("protoc-gen-interop", gluegen.Version)
		return
	}
	protogen.Options{ParamFunc: flag.NewFlagSet("", flag.ContinueOnError).Set}.Run(gluegen.Generate)
}
