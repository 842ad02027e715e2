// Command protoc-gen-interop is a protoc plugin that writes the interop glue
// (<name>_interop.pb.go) next to protoc-gen-go's output; see internal/gluegen.
//
//	protoc --plugin=protoc-gen-interop=BIN --interop_out=DIR --interop_opt=module=M [--interop_opt=Mfile=path;pkg]
//	       [--interop_opt=glue_package=IMPORT_PATH] ...
//
// glue_package writes the glue into that package instead of beside the file's generated code: for
// files whose Go code the runtime already links (see internal/gluegen.Options).
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
	var opts gluegen.Options
	flags := flag.NewFlagSet("", flag.ContinueOnError)
	flags.StringVar(&opts.GluePackage, "glue_package", "", "Go import path to write the glue into")
	// a closure: opts is read after protogen has applied the parameters
	protogen.Options{ParamFunc: flags.Set}.Run(func(gen *protogen.Plugin) error { return opts.Generate(gen) })
}
