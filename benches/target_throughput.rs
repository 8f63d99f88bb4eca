fn main() {
    eprintln!("not yet written");
}
