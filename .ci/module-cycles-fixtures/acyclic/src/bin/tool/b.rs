pub fn helper() {}

#[cfg(test)]
mod tests {
    #[test]
    fn reaches_up_in_tests_only() {
        super::super::a::run();
    }
}
