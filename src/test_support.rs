//! Helpers shared by unit tests.

/// Every string made of up to `max_pieces` of `pieces`, in order: the inputs
/// on which a spec pattern and the parser it documents must agree.
pub fn concatenations(pieces: &[&str], max_pieces: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..max_pieces {
        frontier = frontier
            .iter()
            .flat_map(|prefix| pieces.iter().map(move |piece| format!("{prefix}{piece}")))
            .collect();
        all.extend(frontier.iter().cloned());
    }
    all
}
